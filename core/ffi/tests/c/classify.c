/* The C API from C: classifies raw images with a blob and writes one record
 * per image in the firmware's format (class byte, then every class score as
 * a little-endian int64), after checking that every kind of bad input gets
 * its status code. Built and run by tests/c_api.rs:
 *
 *   classify BLOB IMAGES OUT   (exit 0: all checks passed, OUT written)
 *
 * Strict C99 (and valid C++): -std=c99 -Wall -Wextra -Werror -pedantic. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convrfm.h"

static int failures = 0;

static void expect(convrfm_status got, convrfm_status want, const char *what) {
  if (got != want) {
    fprintf(stderr, "FAIL %s: got %d (%s), want %d (%s)\n", what, (int)got,
            convrfm_status_message((int32_t)got), (int)want,
            convrfm_status_message((int32_t)want));
    failures++;
  }
}

static unsigned char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  unsigned char *data;
  long size;
  if (f == NULL) {
    return NULL;
  }
  if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
    fclose(f);
    return NULL;
  }
  data = (unsigned char *)malloc((size_t)size + 1u);
  if (data != NULL && fread(data, 1, (size_t)size, f) != (size_t)size) {
    free(data);
    data = NULL;
  }
  fclose(f);
  *len = (size_t)size;
  return data;
}

/* Every bad input at the boundary, each with its own status. */
static void check_bad_input(const unsigned char *blob, size_t blob_len,
                            const unsigned char *image, size_t image_len) {
  convrfm_model model;
  convrfm_model never;
  convrfm_prediction p;
  unsigned char *copy;
  static unsigned char scratch[1u << 16];
  int64_t scores[256];
  const char *name = NULL;
  size_t name_len = 0;

  memset(&never, 0, sizeof never);
  expect(convrfm_model_init(NULL, blob_len, &model), CONVRFM_STATUS_NULL_POINTER, "null blob");
  expect(convrfm_model_init(blob, blob_len, NULL), CONVRFM_STATUS_NULL_POINTER, "null model");
  expect(convrfm_model_init(blob, 10, &model), CONVRFM_STATUS_BLOB_TRUNCATED, "short blob");
  expect(convrfm_predict(&model, image, image_len, scratch, sizeof scratch, scores, 256, &p),
         CONVRFM_STATUS_NOT_INITIALISED, "model whose init failed");
  expect(convrfm_predict(&never, image, image_len, scratch, sizeof scratch, scores, 256, &p),
         CONVRFM_STATUS_NOT_INITIALISED, "model never initialised");
  copy = (unsigned char *)malloc(blob_len);
  if (copy != NULL) {
    memcpy(copy, blob, blob_len);
    copy[0] ^= 1u;
    expect(convrfm_model_init(copy, blob_len, &model), CONVRFM_STATUS_BLOB_BAD_MAGIC, "bad magic");
    memcpy(copy, blob, blob_len);
    copy[blob_len / 2] ^= 0x40u;
    expect(convrfm_model_init(copy, blob_len, &model), CONVRFM_STATUS_BLOB_BAD_CRC, "flipped bit");
    free(copy);
  }

  expect(convrfm_model_init(blob, blob_len, &model), CONVRFM_STATUS_OK, "good blob");
  if (convrfm_scratch_len(&model) > sizeof scratch || convrfm_classes(&model) > 256) {
    fprintf(stderr, "FAIL the test's buffers are too small for this blob\n");
    failures++;
    return;
  }
  expect(convrfm_predict(NULL, image, image_len, scratch, sizeof scratch, scores, 256, &p),
         CONVRFM_STATUS_NULL_POINTER, "null model in predict");
  expect(convrfm_predict(&model, NULL, image_len, scratch, sizeof scratch, scores, 256, &p),
         CONVRFM_STATUS_NULL_POINTER, "null image");
  expect(convrfm_predict(&model, image, image_len, NULL, sizeof scratch, scores, 256, &p),
         CONVRFM_STATUS_NULL_POINTER, "null scratch");
  expect(convrfm_predict(&model, image, image_len, scratch, sizeof scratch, NULL, 256, &p),
         CONVRFM_STATUS_NULL_POINTER, "null scores");
  expect(convrfm_predict(&model, image, image_len, scratch, sizeof scratch, scores, 256, NULL),
         CONVRFM_STATUS_NULL_POINTER, "null prediction");
  expect(convrfm_predict(&model, image, image_len - 1, scratch, sizeof scratch, scores, 256, &p),
         CONVRFM_STATUS_IMAGE_LENGTH, "short image");
  expect(convrfm_predict(&model, image, image_len, scratch, convrfm_scratch_len(&model) - 1,
                         scores, 256, &p),
         CONVRFM_STATUS_SCRATCH_TOO_SMALL, "short scratch");
  expect(convrfm_predict(&model, image, image_len, scratch, sizeof scratch, scores,
                         convrfm_classes(&model) - 1, &p),
         CONVRFM_STATUS_SCORES_TOO_SHORT, "too few score slots");
  expect(convrfm_class_name(&model, convrfm_classes(&model), &name, &name_len),
         CONVRFM_STATUS_NO_SUCH_CLASS, "class past the last");
  expect(convrfm_class_name(&model, 0, NULL, &name_len), CONVRFM_STATUS_NULL_POINTER,
         "null name");
  expect(convrfm_class_name(&model, 0, &name, &name_len), CONVRFM_STATUS_OK, "class 0");
  if (name == NULL || name_len == 0) {
    fprintf(stderr, "FAIL class 0 has no name\n");
    failures++;
  }
  if (convrfm_scratch_len(NULL) != 0 || convrfm_image_len(&never) != 0) {
    fprintf(stderr, "FAIL sizes of a null or uninitialised model are not 0\n");
    failures++;
  }
  if (strcmp(convrfm_status_message(12345), "unknown status") != 0 ||
      strcmp(convrfm_status_message(CONVRFM_STATUS_BLOB_BAD_CRC),
             "blob CRC mismatch (corrupt blob)") != 0) {
    fprintf(stderr, "FAIL status messages\n");
    failures++;
  }
}

int main(int argc, char **argv) {
  size_t blob_len = 0, images_len = 0, image_len, classes, i, c;
  unsigned char *blob, *images, *scratch;
  int64_t *scores;
  convrfm_model model;
  convrfm_prediction p;
  FILE *out;

  if (argc != 4) {
    fprintf(stderr, "usage: classify BLOB IMAGES OUT\n");
    return 2;
  }
  blob = read_file(argv[1], &blob_len);
  images = read_file(argv[2], &images_len);
  if (blob == NULL || images == NULL) {
    fprintf(stderr, "cannot read %s or %s\n", argv[1], argv[2]);
    return 2;
  }
  expect(convrfm_model_init(blob, blob_len, &model), CONVRFM_STATUS_OK, "init");
  if (failures != 0) {
    return 1;
  }
  image_len = convrfm_image_len(&model);
  classes = convrfm_classes(&model);
  if (image_len == 0 || images_len < image_len) {
    fprintf(stderr, "no whole image in %s\n", argv[2]);
    return 2;
  }
  check_bad_input(blob, blob_len, images, image_len);

  scratch = (unsigned char *)malloc(convrfm_scratch_len(&model));
  scores = (int64_t *)malloc(classes * sizeof *scores);
  out = fopen(argv[3], "wb");
  if (scratch == NULL || scores == NULL || out == NULL) {
    fprintf(stderr, "cannot allocate or open %s\n", argv[3]);
    return 2;
  }
  for (i = 0; i + image_len <= images_len; i += image_len) {
    unsigned char record[8];
    convrfm_status s = convrfm_predict(&model, images + i, image_len, scratch,
                                       convrfm_scratch_len(&model), scores, classes, &p);
    expect(s, CONVRFM_STATUS_OK, "predict");
    if (s != CONVRFM_STATUS_OK) {
      break;
    }
    fputc((int)p.class_index, out);
    for (c = 0; c < classes; c++) {
      uint64_t v = (uint64_t)scores[c];
      int b;
      for (b = 0; b < 8; b++) {
        record[b] = (unsigned char)(v >> (8 * b));
      }
      fwrite(record, 1, sizeof record, out);
    }
  }
  fclose(out);
  free(scratch);
  free(scores);
  free(images);
  free(blob);
  return failures == 0 ? 0 : 1;
}
