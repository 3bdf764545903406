/* peft/export.h — PEFT_API, the mark on every function libpeft.so exports.
 *
 * libpeft.so is built with -fvisibility=hidden: a function is part of the library's ABI exactly
 * when its declaration in a public header (sdk/include/peft/, installed as include/peft/) carries
 * PEFT_API. `make exports` (part of `make check`) compares `nm -D` of the library with those
 * declarations and fails on any difference, both ways.
 */
#ifndef PEFT_EXPORT_H
#define PEFT_EXPORT_H

#if defined(__GNUC__) || defined(__clang__)
#define PEFT_API __attribute__((visibility("default")))
#else
#define PEFT_API
#endif

#endif
