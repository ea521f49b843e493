/* The C99 reader's implementation, compiled once for the C++ loader, which
 * validates blobs with the very code firmware runs. */
#define SLMBLOB_IMPLEMENTATION
#include "slmblob.h"
