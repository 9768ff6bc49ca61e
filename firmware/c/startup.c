/* Reset and vector table of the C example firmware (Cortex-M4F under QEMU
 * mps2-an386): copy .data, zero .bss, enable the FPU (the static library is
 * built for the hard-float ABI), open newlib's semihosting stdio, run main,
 * exit through semihosting with its status. Faults exit with status 3. */
#include <stdint.h>
#include <stdlib.h>

extern uint32_t __data_start, __data_end, __data_load, __bss_start, __bss_end, __stack_top;
extern void initialise_monitor_handles(void);
extern int main(void);

void Reset_Handler(void);
void Fault_Handler(void);

void Reset_Handler(void) {
  uint32_t *src = &__data_load;
  uint32_t *dst = &__data_start;
  volatile uint32_t *cpacr = (volatile uint32_t *)0xE000ED88u;
  while (dst < &__data_end) {
    *dst++ = *src++;
  }
  for (dst = &__bss_start; dst < &__bss_end; dst++) {
    *dst = 0;
  }
  *cpacr |= 0xFu << 20; /* CP10 and CP11: full access to the FPU */
  __asm__ volatile("dsb\n\tisb");
  initialise_monitor_handles();
  exit(main());
}

void Fault_Handler(void) { exit(3); }

/* Initial stack pointer, reset, NMI, HardFault, MemManage, BusFault,
 * UsageFault: the rest stays unused (no interrupts are enabled). */
__attribute__((section(".vectors"), used)) static void (*const vectors[7])(void) = {
    (void (*)(void))(uintptr_t)&__stack_top,
    Reset_Handler,
    Fault_Handler,
    Fault_Handler,
    Fault_Handler,
    Fault_Handler,
    Fault_Handler,
};
