/* TCG plugin for QEMU 7.2: counts every executed guest instruction by
 * address (inline counters, exact), and at exit writes "address count"
 * lines for every address executed. scripts/firmware-profile.sh builds it
 * and folds the counts into functions. Guest code must lie below 2 MiB. */
#include <stdio.h>
#include <stdlib.h>
#include <glib.h>
#include <qemu-plugin.h>
QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;
#define N (1u << 20)
static uint64_t *counts;
static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
    size_t n = qemu_plugin_tb_n_insns(tb);
    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        uint64_t pc = qemu_plugin_insn_vaddr(insn);
        if (pc / 2 < N)
            qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &counts[pc / 2], 1);
    }
}
static void at_exit(qemu_plugin_id_t id, void *p) {
    const char *path = getenv("PCPROF_OUT");
    FILE *f = fopen(path ? path : "pcprof.txt", "w");
    if (!f) return;
    for (uint32_t i = 0; i < N; i++) if (counts[i]) fprintf(f, "%u %llu\n", i * 2, (unsigned long long)counts[i]);
    fclose(f);
}
QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv) {
    counts = calloc(N, sizeof(uint64_t));
    qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
