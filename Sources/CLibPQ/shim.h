#ifndef STARLING_CLIBPQ_SHIM_H
#define STARLING_CLIBPQ_SHIM_H
#include <libpq-fe.h>
#endif
