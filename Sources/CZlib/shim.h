#ifndef STARLING_CZLIB_SHIM_H
#define STARLING_CZLIB_SHIM_H
#include <zlib.h>
#endif
