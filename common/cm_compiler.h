/*
 * cm_compiler.h - compiler attributes used across botjobs.
 * CM_MUSTCHECK marks fallible calls whose result must be looked at; CM_PRINTF checks format strings.
 */
#ifndef CM_COMPILER_H
#define CM_COMPILER_H

#define CM_MUSTCHECK __attribute__((warn_unused_result))
#define CM_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#define CM_UNUSED __attribute__((unused))
#define CM_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
