/* hello.c — a C program using libpeft through its installed headers and pkg-config alone
 * (`cc hello.c $(pkg-config --cflags --libs libpeft)`): loads a Hugging Face model directory,
 * adds a LoRA adapter, runs a recorded forward and a backward, and prints PEFT's trainable line
 * and the loss. `make sdk-check` builds and runs it against a staged install.
 * usage: hello MODEL_DIR */
#include <peft/peft.h>
#include <stdio.h>

static int fail(peft_ctx *ctx, const char *what)
{
    fprintf(stderr, "hello: %s: %s (code %d)\n", what, peft_errmsg(ctx), peft_errcode(ctx));
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: hello MODEL_DIR\n");
        return 2;
    }
    if (peft_libversion_number() != PEFT_VERSION_NUMBER) {
        fprintf(stderr, "hello: built for libpeft %s, running on %s\n", PEFT_VERSION, peft_libversion());
        return 1;
    }
    peft_ctx *ctx = peft_ctx_new(0);
    peft_base_model *base;
    if (peft_load_base_model(ctx, argv[1], &base)) return fail(ctx, "load");
    peft_model *m; /* takes ownership of base */
    if (peft_get_peft_model(ctx, base,
                            "{\"peft_type\": \"LORA\", \"task_type\": \"CAUSAL_LM\", \"r\": 4, "
                            "\"lora_alpha\": 8, \"target_modules\": [\"c_attn\"]}",
                            "default", 0, &m))
        return fail(ctx, "get_peft_model");
    peft_print_trainable_parameters(m, stdout);

    int32_t ids[2][8] = {{1, 2, 3, 4, 5, 6, 7, 8}, {9, 10, 11, 12, 13, 14, 15, 16}};
    peft_model_inputs in = {.B = 2, .T = 8, .input_ids = &ids[0][0], .labels = &ids[0][0]};
    peft_graph *g = peft_graph_new(peft_ctx_rng(ctx));
    peft_graph_set_recording(g, 1);
    peft_model_train(m, 1);
    peft_model_outputs out;
    if (peft_model_forward(m, g, &in, &out)) return fail(ctx, "forward");
    if (peft_graph_backward(g, out.loss)) {
        fprintf(stderr, "hello: backward: %s\n", peft_graph_error(g));
        return 1;
    }
    printf("libpeft %s (C): loss %.6f, %zu backward nodes\n", peft_libversion(),
           (double)peft_f32(out.loss)[0], peft_graph_tape_len(g));
    peft_graph_free(g);
    peft_model_free(m);
    peft_ctx_free(ctx);
    return 0;
}
