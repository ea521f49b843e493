# Warnings as errors on our own code only; dependencies' headers come in as
# SYSTEM includes through their imported targets.
function(slmopt_target_defaults target)
  target_compile_features(${target} PUBLIC cxx_std_20)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Werror -Wshadow $<$<COMPILE_LANGUAGE:CXX>:-Wnon-virtual-dtor>)
  # GCC 12 at -O3 reports false -Wrestrict errors inside libstdc++'s
  # std::string operator+ (GCC bug 105651, fixed in GCC 13).
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
    target_compile_options(${target} PRIVATE -Wno-restrict)
  endif()
  # Sanitizer instrumentation makes GCC report false "may be used uninitialized"
  # warnings inside libstdc++ (std::regex, std::function); the GCC manual warns
  # that this diagnostic is unreliable at high optimisation with instrumentation.
  if(SLMOPT_SANITIZE AND CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    target_compile_options(${target} PRIVATE -Wno-maybe-uninitialized)
  endif()
endfunction()
