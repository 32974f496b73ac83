#ifndef STARLING_CZSTD_SHIM_H
#define STARLING_CZSTD_SHIM_H
#include <zstd.h>
#endif
