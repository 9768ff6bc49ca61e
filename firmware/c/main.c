/* The C example firmware: the blob linked into flash (BLOB_* symbols made
 * by objcopy in the Makefile), images read from a host file through
 * semihosting, one record per image written back in the Rust firmware's
 * format (class byte, then every class score as a little-endian int64), so
 * scripts/firmware-test.sh compares it byte for byte with the host.
 *
 *   qemu-system-arm -machine mps2-an386 -cpu cortex-m4 -nographic \
 *     -semihosting-config enable=on,target=native -kernel convrfm-c.elf
 *
 * reads IMAGES_FILE and writes RECORDS_FILE (default images.bin and
 * records.bin, relative to QEMU's working directory). Exit status 0, or 1
 * with a message on stderr. */
#include <stdint.h>
#include <stdio.h>

#include "convrfm.h"

#ifndef IMAGES_FILE
#define IMAGES_FILE "images.bin"
#endif
#ifndef RECORDS_FILE
#define RECORDS_FILE "records.bin"
#endif
#define MAX_SCRATCH (64u * 1024u)
#define MAX_IMAGE (4u * 1024u)
#define MAX_CLASSES 256u

extern const uint8_t _binary_blob_bin_start[];
extern const uint8_t _binary_blob_bin_end[];

static convrfm_model model;
static uint8_t scratch[MAX_SCRATCH];
static uint8_t image[MAX_IMAGE];
static int64_t scores[MAX_CLASSES];

static int fail(const char *what, convrfm_status s) {
  fprintf(stderr, "convrfm C firmware: %s: %s\n", what, convrfm_status_message((int32_t)s));
  return 1;
}

int main(void) {
  size_t blob_len = (size_t)(_binary_blob_bin_end - _binary_blob_bin_start);
  size_t image_len, classes, images = 0;
  convrfm_prediction p;
  convrfm_status s;
  FILE *in, *out;

  s = convrfm_model_init(_binary_blob_bin_start, blob_len, &model);
  if (s != CONVRFM_STATUS_OK) {
    return fail("blob", s);
  }
  image_len = convrfm_image_len(&model);
  classes = convrfm_classes(&model);
  if (image_len > MAX_IMAGE || classes > MAX_CLASSES || convrfm_scratch_len(&model) > MAX_SCRATCH) {
    fprintf(stderr, "convrfm C firmware: the blob needs larger buffers\n");
    return 1;
  }
  printf("convrfm C firmware: blob %u bytes, %u classes, images of %u bytes, scratch %u bytes\n",
         (unsigned)blob_len, (unsigned)classes, (unsigned)image_len,
         (unsigned)convrfm_scratch_len(&model));
  in = fopen(IMAGES_FILE, "rb");
  out = fopen(RECORDS_FILE, "wb");
  if (in == NULL || out == NULL) {
    fprintf(stderr, "convrfm C firmware: cannot open %s or %s\n", IMAGES_FILE, RECORDS_FILE);
    return 1;
  }
  for (;;) {
    size_t got = fread(image, 1, image_len, in);
    size_t c;
    if (got == 0) {
      break;
    }
    if (got != image_len) {
      fprintf(stderr, "convrfm C firmware: truncated image %u (%u of %u bytes)\n",
              (unsigned)images, (unsigned)got, (unsigned)image_len);
      return 1;
    }
    s = convrfm_predict(&model, image, image_len, scratch, sizeof scratch, scores, classes, &p);
    if (s != CONVRFM_STATUS_OK) {
      return fail("predict", s);
    }
    fputc((int)p.class_index, out);
    for (c = 0; c < classes; c++) {
      uint64_t v = (uint64_t)scores[c];
      unsigned char bytes[8];
      int b;
      for (b = 0; b < 8; b++) {
        bytes[b] = (unsigned char)(v >> (8 * b));
      }
      fwrite(bytes, 1, sizeof bytes, out);
    }
    images++;
  }
  if (fclose(out) != 0) {
    fprintf(stderr, "convrfm C firmware: writing %s failed\n", RECORDS_FILE);
    return 1;
  }
  fclose(in);
  printf("convrfm C firmware: %u images classified\n", (unsigned)images);
  return 0;
}
