/* Runs an exported hybrid program from C, with no Python:
 *   run_model model.hyb     (every input filled with 0.5; prints each output's sum)
 * Build: see CMakeLists.txt in this folder. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hybrid/runtime.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s model.hyb\n", argv[0]);
    return 2;
  }
  hybrid_program* p = hybrid_load(argv[1]);
  if (p == NULL) {
    fprintf(stderr, "load failed: %s\n", hybrid_last_error());
    return 1;
  }
  int n_in = hybrid_num_inputs(p), n_out = hybrid_num_outputs(p);
  void** inputs = calloc((size_t)n_in, sizeof(void*));
  void** outputs = calloc((size_t)n_out, sizeof(void*));
  for (int i = 0; i < n_in; ++i) {
    int64_t nbytes = hybrid_tensor_nbytes(p, 0, i);
    inputs[i] = malloc((size_t)nbytes + 1);
    if (strcmp(hybrid_tensor_dtype(p, 0, i), "float32") == 0) {
      for (int64_t k = 0; k < nbytes / 4; ++k) ((float*)inputs[i])[k] = 0.5f;
    } else {
      memset(inputs[i], 0, (size_t)nbytes);
    }
    printf("input %s: %s, %d dims\n", hybrid_tensor_name(p, 0, i), hybrid_tensor_dtype(p, 0, i),
           hybrid_tensor_ndim(p, 0, i));
  }
  for (int j = 0; j < n_out; ++j) outputs[j] = malloc((size_t)hybrid_tensor_nbytes(p, 1, j) + 1);
  if (hybrid_run(p, (const void* const*)inputs, outputs) != 0) {
    fprintf(stderr, "run failed: %s\n", hybrid_last_error());
    return 1;
  }
  for (int j = 0; j < n_out; ++j) {
    double sum = 0;
    if (strcmp(hybrid_tensor_dtype(p, 1, j), "float32") == 0) {
      for (int64_t k = 0; k < hybrid_tensor_nbytes(p, 1, j) / 4; ++k) sum += ((float*)outputs[j])[k];
    }
    printf("output %s sum %.9g\n", hybrid_tensor_name(p, 1, j), sum);
  }
  for (int i = 0; i < n_in; ++i) free(inputs[i]);
  for (int j = 0; j < n_out; ++j) free(outputs[j]);
  free(inputs);
  free(outputs);
  hybrid_free(p);
  return 0;
}
