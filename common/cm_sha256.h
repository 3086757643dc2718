/*
 * cm_sha256.h - SHA-256 (FIPS 180-4), for API token hashes and name-based job ids.
 */
#ifndef CM_SHA256_H
#define CM_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define CM_SHA256_LEN 32

struct cm_sha256 {
	uint32_t h[8];
	uint64_t len;
	uint8_t buf[64];
	size_t used;
};

void cm_sha256_init(struct cm_sha256 *c);
void cm_sha256_update(struct cm_sha256 *c, const void *data, size_t n);
void cm_sha256_final(struct cm_sha256 *c, uint8_t out[CM_SHA256_LEN]);
/* One shot. */
void cm_sha256(const void *data, size_t n, uint8_t out[CM_SHA256_LEN]);

#endif
