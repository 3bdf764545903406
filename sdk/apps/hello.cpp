// hello.cpp — the same as hello.c from C++ (the headers are extern "C"): built with
// `c++ hello.cpp $(pkg-config --cflags --libs libpeft)` against the installed headers, it loads
// a model directory, adds a LoRA adapter, runs a forward and a backward and prints the loss.
// usage: hello_cpp MODEL_DIR
#include <peft/peft.h>

#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

struct ctx_free { void operator()(peft_ctx *c) const { peft_ctx_free(c); } };
struct model_free { void operator()(peft_model *m) const { peft_model_free(m); } };
struct graph_free { void operator()(peft_graph *g) const { peft_graph_free(g); } };

void check(peft_ctx *ctx, int rc, const char *what)
{
    if (rc != PEFT_OK)
        throw std::runtime_error(std::string(what) + ": " + peft_errmsg(ctx) + " (code " +
                                 std::to_string(peft_errcode(ctx)) + ")");
}

} // namespace

int main(int argc, char **argv)
{
    if (argc != 2) {
        std::fprintf(stderr, "usage: hello_cpp MODEL_DIR\n");
        return 2;
    }
    try {
        std::unique_ptr<peft_ctx, ctx_free> ctx(peft_ctx_new(0));
        peft_base_model *base = nullptr;
        check(ctx.get(), peft_load_base_model(ctx.get(), argv[1], &base), "load");
        peft_model *raw = nullptr;
        check(ctx.get(),
              peft_get_peft_model(ctx.get(), base,
                                  R"({"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 4,
                                      "lora_alpha": 8, "target_modules": ["c_attn"]})",
                                  "default", 0, &raw),
              "get_peft_model");
        std::unique_ptr<peft_model, model_free> m(raw);
        std::vector<int32_t> ids = {1, 2, 3, 4, 5, 6, 7, 8};
        peft_model_inputs in{};
        in.B = 1;
        in.T = static_cast<int64_t>(ids.size());
        in.input_ids = ids.data();
        in.labels = ids.data();
        std::unique_ptr<peft_graph, graph_free> g(peft_graph_new(peft_ctx_rng(ctx.get())));
        peft_graph_set_recording(g.get(), 1);
        peft_model_train(m.get(), 1);
        peft_model_outputs out{};
        check(ctx.get(), peft_model_forward(m.get(), g.get(), &in, &out), "forward");
        if (peft_graph_backward(g.get(), out.loss) != PEFT_OK)
            throw std::runtime_error(std::string("backward: ") + peft_graph_error(g.get()));
        int64_t trainable = 0, all = 0;
        check(ctx.get(), peft_get_nb_trainable_parameters(m.get(), &trainable, &all), "count");
        std::printf("libpeft %s (C++): loss %.6f, %lld trainable of %lld\n", peft_libversion(),
                    static_cast<double>(peft_f32(out.loss)[0]), static_cast<long long>(trainable),
                    static_cast<long long>(all));
    } catch (const std::exception &e) {
        std::fprintf(stderr, "hello_cpp: %s\n", e.what());
        return 1;
    }
    return 0;
}
