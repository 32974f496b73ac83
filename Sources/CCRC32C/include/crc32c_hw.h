#ifndef STARLING_CRC32C_HW_H
#define STARLING_CRC32C_HW_H

#include <stddef.h>
#include <stdint.h>

/// 1 when this CPU has a CRC32C instruction that `starling_crc32c_hw` uses (x86-64 with SSE4.2),
/// else 0 (callers then use the table-driven code).
int starling_crc32c_hw_available(void);

/// Continues a CRC32C (Castagnoli) over `count` bytes with the CPU's instruction. `crc` is the
/// running register (already inverted: pass ~seed, invert the result).
uint32_t starling_crc32c_hw(uint32_t crc, const uint8_t *bytes, size_t count);

#endif
