/* hybrid's C API: load an exported program (hybrid.export(...).save(path)) and run it, with no
 * Python. Every function that can fail returns NULL or a non-zero status and leaves a message
 * for hybrid_last_error() (per thread). Not thread-safe per program: one run at a time. */
#ifndef HYBRID_RUNTIME_H
#define HYBRID_RUNTIME_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hybrid_program hybrid_program;

/* The program in the file at `path`, checked (hashes, format version, this CPU); NULL on error. */
hybrid_program* hybrid_load(const char* path);
void hybrid_free(hybrid_program* program);
/* The last error of this thread ("" when none). */
const char* hybrid_last_error(void);

int hybrid_num_inputs(const hybrid_program* program);
int hybrid_num_outputs(const hybrid_program* program);
/* Of input (is_output 0) or output (1) `i`: its name, numpy dtype name ("float32"), rank,
 * sizes and bytes; NULL / -1 when `i` is out of range. */
const char* hybrid_tensor_name(const hybrid_program* program, int is_output, int i);
const char* hybrid_tensor_dtype(const hybrid_program* program, int is_output, int i);
int hybrid_tensor_ndim(const hybrid_program* program, int is_output, int i);
const int64_t* hybrid_tensor_shape(const hybrid_program* program, int is_output, int i);
int64_t hybrid_tensor_nbytes(const hybrid_program* program, int is_output, int i);

/* Runs the program: inputs[i] holds input i (C-contiguous, its dtype and shape), outputs[j]
 * receives output j (hybrid_tensor_nbytes bytes). 0 on success. */
int hybrid_run(hybrid_program* program, const void* const* inputs, void* const* outputs);

#ifdef __cplusplus
}
#endif

#endif /* HYBRID_RUNTIME_H */
