/* tests/cxx/abi.c - the C compiler's view of the public types (abi.h). */
#include "abi.h"

#define ABI_T(type) {#type, sizeof(type), _Alignof(type)},
#define ABI_F(type, field) {#type "." #field, sizeof(((type *)0)->field), offsetof(type, field)},

const abi_entry abi_c[] = {ABI_LAYOUT(ABI_T, ABI_F)};
const size_t abi_c_count = sizeof abi_c / sizeof abi_c[0];
