/* Loads a secc artifact, lists its inputs, runs it once on deterministic pseudo-random
 * inputs and prints each output's shape and checksum.
 *
 *   cc -O2 -I runtime/capi/include examples/c/run_model.c target/release/libsecc.a \
 *      -lpthread -ldl -lm -o run_model
 *   ./run_model model.bin [BATCH] [THREADS]
 *
 * A symbolic input dimension (the batch) takes the value BATCH (default 1); THREADS 0 (the
 * default) runs with one thread per core. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "secc.h"

/* xorshift64: the same sequence as examples/run_cpu, values in [-2, 2) */
static float next_value(uint64_t *seed) {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    return (float)(*seed >> 40) / (float)(1u << 24) * 4.0f - 2.0f;
}

static int fail(const char *what) {
    fprintf(stderr, "error: %s: %s\n", what, secc_last_error());
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.bin [BATCH] [THREADS]\n", argv[0]);
        return 2;
    }
    int64_t batch = argc > 2 ? atoll(argv[2]) : 1;
    size_t threads = argc > 3 ? (size_t)atoll(argv[3]) : 0;
    SeccModel *model = NULL;
    if (secc_model_load(argv[1], &model) != SECC_OK) return fail("loading the model");

    size_t n = secc_model_input_count(model);
    SeccTensor *inputs = calloc(n, sizeof *inputs);
    int64_t **shapes = calloc(n, sizeof *shapes);
    float **data = calloc(n, sizeof *data);
    uint64_t seed = 0x2545F4914F6CDD1Dull;
    for (size_t i = 0; i < n; i++) {
        size_t rank = secc_model_input_rank(model, i);
        shapes[i] = calloc(rank ? rank : 1, sizeof(int64_t));
        if (secc_model_input_shape(model, i, shapes[i]) != SECC_OK) return fail("input shape");
        size_t count = 1;
        printf("input %s: [", secc_model_input_name(model, i));
        for (size_t k = 0; k < rank; k++) {
            printf(shapes[i][k] < 0 ? "%sN" : "%s%lld", k ? ", " : "", (long long)shapes[i][k]);
            if (shapes[i][k] < 0) shapes[i][k] = batch; /* symbolic: the batch */
            count *= (size_t)shapes[i][k];
        }
        printf("]\n");
        data[i] = malloc(count * sizeof(float));
        for (size_t e = 0; e < count; e++) data[i][e] = next_value(&seed);
        inputs[i] = (SeccTensor){.data = data[i], .shape = shapes[i], .rank = rank};
    }

    SeccSession *session = NULL;
    if (secc_session_new(model, threads, &session) != SECC_OK) return fail("starting a session");
    if (secc_session_run(session, inputs, n) != SECC_OK) return fail("running the model");
    for (size_t o = 0; o < secc_model_output_count(model); o++) {
        const char *name = secc_model_output_name(model, o);
        SeccTensor out;
        if (secc_session_output(session, o, &out) != SECC_OK) {
            printf("output %s: %s\n", name, secc_last_error());
            continue;
        }
        size_t count = 1;
        printf("output %s: shape [", name);
        for (size_t k = 0; k < out.rank; k++) {
            printf("%s%lld", k ? ", " : "", (long long)out.shape[k]);
            count *= (size_t)out.shape[k];
        }
        double sum = 0.0;
        for (size_t e = 0; e < count; e++) sum += out.data[e];
        printf("], sum %.6f\n", sum);
    }

    secc_session_free(session);
    secc_model_free(model);
    for (size_t i = 0; i < n; i++) {
        free(shapes[i]);
        free(data[i]);
    }
    free(shapes);
    free(data);
    free(inputs);
    return 0;
}
