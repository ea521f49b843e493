// llama.cpp's quantization error on the reproducible matrices of
// ../shared/quant-reference.md (ggml's quantizers, no importance matrix,
// llama.cpp as of 2025-02), and the preset of ours that competes with each
// type at equal or fewer bits per weight.
#pragma once

namespace slmopt::bench {

struct LlamaFigure {
  const char* type;
  double bpw;
  double gauss_rel, gauss_max, t3_rel, t3_max;
  const char* ours;  // our preset or spec at <= bpw
};

inline constexpr LlamaFigure kLlamaFigures[] = {
    {"Q8_0", 8.5, 0.00536, 0.0193, 0.00848, 0.607, "q8"},
    {"Q6_K", 6.5625, 0.0177, 0.0793, 0.0256, 2.12, "q6"},
    {"Q5_K", 5.5, 0.0361, 0.143, 0.0469, 2.12, "q5"},
    {"Q4_K", 4.5, 0.0713, 0.304, 0.0927, 3.55, "q4"},
    {"IQ4_XS", 4.25, 0.0767, 0.296, 0.1030, 3.39, "q4n"},
    {"Q3_K", 3.4375, 0.1509, 0.711, 0.1894, 6.31, "q3"},
    {"Q2_K", 2.625, 0.2967, 1.40, 0.3514, 9.20, "q2"},
};

}  // namespace slmopt::bench
