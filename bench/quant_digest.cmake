# slmopt_quant_digest: needs only the quantizer, so the clang build
# (SLMOPT_QUANT_ONLY) and the full build both include this file.
add_executable(slmopt_quant_digest ${PROJECT_SOURCE_DIR}/bench/quant_digest.cpp)
target_link_libraries(slmopt_quant_digest PRIVATE slmopt_quant)
target_compile_options(slmopt_quant_digest PRIVATE -ffp-contract=off)
slmopt_target_defaults(slmopt_quant_digest)
