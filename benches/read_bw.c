/* read_bw: cold read bandwidth of one thread over an S-MB buffer, as Q interleaved
 * sequential streams (each a contiguous Q-th of the buffer), optionally with a software
 * prefetch PF 64-byte vectors ahead in each stream. Between rounds a 128 MiB sweep evicts
 * the buffer from every cache, as a batch-1 network run evicts the weights of the last one.
 * Prints the best and mean of 15 rounds. Written by hand because no packaged tool measures
 * exactly this (the read pattern of secc's FC and convolution weight streams).
 * Build: cc -O2 -mavx512f read_bw.c -o read_bw     Run: ./read_bw 5 4 32 */
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: read_bw MB STREAMS [PREFETCH_VECTORS]\n");
    return 2;
  }
  size_t bytes = (size_t)(atof(argv[1]) * 1e6) / 64 * 64;
  int q = atoi(argv[2]), pf = argc > 3 ? atoi(argv[3]) : 0;
  if (q < 1 || bytes < (size_t)q * 64) {
    fprintf(stderr, "read_bw: need at least one 64-byte vector per stream\n");
    return 2;
  }
  size_t big = 128u << 20;
  char *junk = aligned_alloc(64, big);
  float *w = aligned_alloc(64, bytes);
  if (!junk || !w) return 1;
  memset(junk, 1, big);
  for (size_t i = 0; i < bytes / 4; i++) w[i] = (float)i * 1e-9f;
  size_t n = bytes / 64 / q; /* vectors per stream */
  double best = 1e9, total = 0;
  float keep = 0;
  const int rounds = 15;
  for (int r = 0; r < rounds; r++) {
    volatile long s = 0;
    for (size_t i = 0; i < big; i += 64) s += junk[i];
    double t0 = now();
    __m512 acc[8];
    for (int k = 0; k < 8; k++) acc[k] = _mm512_setzero_ps();
    for (size_t k = 0; k < n; k++)
      for (int j = 0; j < q; j++) {
        const float *p = w + (j * n + k) * 16;
        if (pf) _mm_prefetch((const char *)(p + pf * 16), _MM_HINT_T0);
        acc[j & 7] = _mm512_add_ps(acc[j & 7], _mm512_load_ps(p));
      }
    double t = now() - t0;
    for (int k = 0; k < 8; k++) keep += _mm512_reduce_add_ps(acc[k]);
    if (t < best) best = t;
    total += t;
  }
  printf("{\"mb\": %.1f, \"streams\": %d, \"prefetch_vectors\": %d, \"best_gbs\": %.1f, "
         "\"mean_gbs\": %.1f, \"checksum\": %g}\n",
         bytes / 1e6, q, pf, n * q * 64 / best / 1e9, n * q * 64.0 * rounds / total / 1e9, keep);
  return 0;
}
