# Warnings as errors on our own code only; dependencies' headers come in as
# SYSTEM includes through their imported targets.
function(slmopt_target_defaults target)
  target_compile_features(${target} PUBLIC cxx_std_20)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Werror -Wshadow -Wnon-virtual-dtor)
endfunction()
