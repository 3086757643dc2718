/*
 * cm_id.c - UUIDs, tokens and constant-time comparison. See cm_id.h.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "cm_id.h"
#include "cm_sha256.h"
#include "cm_time.h"

int cm_random(void *buf, size_t n)
{
	uint8_t *p = buf;
	while (n > 0) {
		ssize_t r = getrandom(p, n, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

void cm_hex(const uint8_t *in, size_t n, char *out)
{
	static const char hx[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hx[in[i] >> 4];
		out[2 * i + 1] = hx[in[i] & 15];
	}
	out[2 * n] = '\0';
}

static void uuid_format(const uint8_t b[16], char out[CM_UUID_STRLEN + 1])
{
	char hex[33];
	cm_hex(b, 16, hex);
	snprintf(out, CM_UUID_STRLEN + 1, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
}

int cm_uuid_v7(char out[CM_UUID_STRLEN + 1])
{
	uint8_t b[16];
	if (cm_random(b, sizeof(b)) == -1)
		return -1;
	uint64_t ms = (uint64_t)(cm_time_now_us() / 1000);
	for (int i = 0; i < 6; i++)
		b[i] = (uint8_t)(ms >> (40 - 8 * i));
	b[6] = (uint8_t)(0x70 | (b[6] & 0x0f));
	b[8] = (uint8_t)(0x80 | (b[8] & 0x3f));
	uuid_format(b, out);
	return 0;
}

void cm_uuid_from_name(const char *ns, const char *name, size_t name_len, char out[CM_UUID_STRLEN + 1])
{
	struct cm_sha256 c;
	uint8_t d[CM_SHA256_LEN];
	cm_sha256_init(&c);
	cm_sha256_update(&c, ns, strlen(ns) + 1); /* the NUL separates namespace and name */
	cm_sha256_update(&c, name, name_len);
	cm_sha256_final(&c, d);
	d[6] = (uint8_t)(0x80 | (d[6] & 0x0f));
	d[8] = (uint8_t)(0x80 | (d[8] & 0x3f));
	uuid_format(d, out);
}

int cm_uuid_valid(const char *s)
{
	for (int i = 0; i < CM_UUID_STRLEN; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return 0;
		} else if (!isxdigit((unsigned char)s[i])) {
			return 0;
		}
	}
	return s[CM_UUID_STRLEN] == '\0';
}

int cm_token_new(char *out, size_t out_size)
{
	static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	uint8_t r[32];
	if (out_size < 48 || cm_random(r, sizeof(r)) == -1)
		return -1;
	size_t o = 0;
	memcpy(out, CM_TOKEN_PREFIX, 3);
	o = 3;
	uint32_t acc = 0;
	int bits = 0;
	for (size_t i = 0; i < sizeof(r); i++) {
		acc = (acc << 8) | r[i];
		bits += 8;
		while (bits >= 6) {
			out[o++] = b64[(acc >> (bits - 6)) & 63];
			bits -= 6;
		}
	}
	if (bits > 0)
		out[o++] = b64[(acc << (6 - bits)) & 63];
	out[o] = '\0';
	return 0;
}

void cm_token_hash_hex(const char *token, char out[65])
{
	uint8_t d[CM_SHA256_LEN];
	cm_sha256(token, strlen(token), d);
	cm_hex(d, sizeof(d), out);
}

int cm_ct_equal(const void *a, const void *b, size_t n)
{
	const volatile uint8_t *x = a, *y = b;
	uint8_t diff = 0;
	for (size_t i = 0; i < n; i++)
		diff |= x[i] ^ y[i];
	return diff == 0;
}
