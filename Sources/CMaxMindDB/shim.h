#ifndef STARLING_CMAXMINDDB_SHIM_H
#define STARLING_CMAXMINDDB_SHIM_H
#include <maxminddb.h>
#endif
