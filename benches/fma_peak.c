/* The FMA peak of this machine, the ceiling the convolution benchmark is measured against:
 * per thread, 24 independent chains of vector FMAs (enough to cover the latency on two FMA
 * ports), AVX-512 when compiled with -mavx512f, else AVX2. Prints GFLOP/s for 1..N threads
 * as JSON. Written by hand because no packaged tool reports exactly this; see
 * docs/benchmarks.md. Build: cc -O2 -march=native -pthread fma_peak.c -o fma_peak */
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#ifdef __AVX512F__
typedef __m512 vec;
#define LANES 16
#define FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define SET1(x) _mm512_set1_ps(x)
#define ADD(a, b) _mm512_add_ps(a, b)
#define SUM(v) _mm512_reduce_add_ps(v)
#else
typedef __m256 vec;
#define LANES 8
#define FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define SET1(x) _mm256_set1_ps(x)
#define ADD(a, b) _mm256_add_ps(a, b)
static float SUM(__m256 v) { float t[8]; _mm256_storeu_ps(t, v); return t[0] + t[7]; }
#endif

#define CHAINS 24
static long ITERS = 20000000;
static volatile float sink;

static void *work(void *arg) {
    (void)arg;
    vec acc[CHAINS];
    for (int i = 0; i < CHAINS; i++) acc[i] = SET1(0.001f * i);
    vec a = SET1(0.999999f), b = SET1(1e-7f);
    for (long it = 0; it < ITERS; it++) {
#pragma GCC unroll 24
        for (int i = 0; i < CHAINS; i++) acc[i] = FMA(acc[i], a, b);
    }
    vec s = acc[0];
    for (int i = 1; i < CHAINS; i++) s = ADD(s, acc[i]);
    sink = SUM(s);
    return NULL;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    int maxt = argc > 1 ? atoi(argv[1]) : 1;
    if (argc > 2) ITERS = atol(argv[2]);
    printf("{\"lanes\": %d, \"gflops\": [", LANES);
    for (int n = 1; n <= maxt; n++) {
        pthread_t th[256];
        double best = 0;
        for (int rep = 0; rep < 3; rep++) {
            double t0 = now();
            for (int i = 0; i < n; i++) pthread_create(&th[i], NULL, work, NULL);
            for (int i = 0; i < n; i++) pthread_join(th[i], NULL);
            double dt = now() - t0;
            double g = 2.0 * LANES * CHAINS * (double)ITERS * n / dt / 1e9;
            if (g > best) best = g;
        }
        printf("%s%.1f", n > 1 ? ", " : "", best);
    }
    printf("]}\n");
    return 0;
}
