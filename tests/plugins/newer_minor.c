/* newer_minor.c — fixture plugin needing ABI 1.99: a 1.0 host must refuse it. */
#define FIX_NAME "newerminor"
#define FIX_MINOR 99
#include "fixture.h"
