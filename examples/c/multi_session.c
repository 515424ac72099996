/* Several threads run one model at once, each through its own session, and check every
 * result against a serial run, bit for bit. Threads alternate between batch sizes when the
 * model's first input has a symbolic batch.
 *
 *   cc -O2 -I runtime/capi/include examples/c/multi_session.c -L target/release -lsecc \
 *      -Wl,-rpath,$PWD/target/release -lpthread -o multi_session
 *   ./multi_session model.bin [THREADS] [RUNS]
 *
 * The model is loaded once (code and weights shared); each session owns its arena and
 * outputs. Prints one line and exits 0 when every run matched. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "secc.h"

#define CASES 3 /* distinct inputs; case c has batch c + 1 if the batch is symbolic */

typedef struct {
    SeccTensor *inputs; /* one per model input */
    float *expected;    /* output 0 of the serial run */
    size_t expected_len;
} Case;

typedef struct {
    const SeccModel *model;
    const Case *cases;
    size_t inputs, runs, index;
    int mismatches;
    char error[512];
} Worker;

static float next_value(uint64_t *seed) {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    return (float)(*seed >> 40) / (float)(1u << 24) * 4.0f - 2.0f;
}

static size_t elements(const SeccTensor *t) {
    size_t n = 1;
    for (size_t k = 0; k < t->rank; k++) n *= (size_t)t->shape[k];
    return n;
}

static void *work(void *arg) {
    Worker *w = arg;
    SeccSession *s = NULL;
    if (secc_session_new(w->model, 1, &s) != SECC_OK) {
        snprintf(w->error, sizeof w->error, "session: %s", secc_last_error());
        return NULL;
    }
    for (size_t r = 0; r < w->runs; r++) {
        const Case *c = &w->cases[(w->index + r) % CASES];
        SeccTensor out;
        if (secc_session_run(s, c->inputs, w->inputs) != SECC_OK ||
            secc_session_output(s, 0, &out) != SECC_OK) {
            snprintf(w->error, sizeof w->error, "run %zu: %s", r, secc_last_error());
            break;
        }
        if (elements(&out) != c->expected_len ||
            memcmp(out.data, c->expected, c->expected_len * sizeof(float)) != 0)
            w->mismatches++;
    }
    secc_session_free(s);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.bin [THREADS] [RUNS]\n", argv[0]);
        return 2;
    }
    size_t nthreads = argc > 2 ? (size_t)atoll(argv[2]) : 8;
    size_t runs = argc > 3 ? (size_t)atoll(argv[3]) : 50;
    SeccModel *model = NULL;
    if (secc_model_load(argv[1], &model) != SECC_OK) {
        fprintf(stderr, "error: %s\n", secc_last_error());
        return 1;
    }
    size_t n = secc_model_input_count(model);
    Case cases[CASES];
    uint64_t seed = 42;
    SeccSession *serial = NULL;
    if (secc_session_new(model, 1, &serial) != SECC_OK) return 1;
    for (int c = 0; c < CASES; c++) {
        cases[c].inputs = calloc(n, sizeof(SeccTensor));
        for (size_t i = 0; i < n; i++) {
            size_t rank = secc_model_input_rank(model, i);
            int64_t *shape = calloc(rank ? rank : 1, sizeof(int64_t));
            secc_model_input_shape(model, i, shape);
            for (size_t k = 0; k < rank; k++)
                if (shape[k] < 0) shape[k] = c + 1;
            SeccTensor t = {.data = NULL, .shape = shape, .rank = rank};
            size_t count = elements(&t);
            float *d = malloc(count * sizeof(float));
            for (size_t e = 0; e < count; e++) d[e] = next_value(&seed);
            t.data = d;
            cases[c].inputs[i] = t;
        }
        SeccTensor out;
        if (secc_session_run(serial, cases[c].inputs, n) != SECC_OK ||
            secc_session_output(serial, 0, &out) != SECC_OK) {
            fprintf(stderr, "error: serial run: %s\n", secc_last_error());
            return 1;
        }
        cases[c].expected_len = elements(&out);
        cases[c].expected = malloc(cases[c].expected_len * sizeof(float));
        memcpy(cases[c].expected, out.data, cases[c].expected_len * sizeof(float));
    }
    secc_session_free(serial);

    pthread_t *tids = calloc(nthreads, sizeof *tids);
    Worker *ws = calloc(nthreads, sizeof *ws);
    for (size_t t = 0; t < nthreads; t++) {
        ws[t] = (Worker){.model = model, .cases = cases, .inputs = n, .runs = runs, .index = t};
        pthread_create(&tids[t], NULL, work, &ws[t]);
    }
    int bad = 0;
    for (size_t t = 0; t < nthreads; t++) {
        pthread_join(tids[t], NULL);
        if (ws[t].error[0]) {
            fprintf(stderr, "thread %zu: %s\n", t, ws[t].error);
            bad = 1;
        }
        if (ws[t].mismatches) {
            fprintf(stderr, "thread %zu: %d run(s) differ from the serial run\n", t, ws[t].mismatches);
            bad = 1;
        }
    }
    if (!bad)
        printf("%zu threads x %zu runs, one session each: every output bit-identical to the serial run\n",
               nthreads, runs);
    secc_model_free(model);
    return bad;
}
