/* libFuzzer target for the model loader: any byte string is either refused with a status
 * and a message, or loads; a loaded model must then create a session and classify a
 * zero image through both stages without touching memory it does not own. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "basisnet.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    bn_model *m = NULL;
    /* a private copy so that reads past the end are caught by ASan */
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    bn_status st = bn_model_open_buffer(buf, size, "fuzz.bnm", &m, err, sizeof err);
    if (st == BN_OK) {
        const bn_model_info *info = bn_model_get_info(m);
        bn_session *s = NULL;
        if (bn_session_new(m, (bn_session_params){.threads = 1}, &s, err, sizeof err) == BN_OK) {
            /* keep each run fast: skip huge (but valid) architectures */
            if (bn_session_bytes(s) < (64u << 20)) {
                size_t stride = (size_t)info->width * (size_t)info->channels;
                uint8_t *img = calloc((size_t)info->height, stride);
                bn_result r;
                if (img && bn_classify(s, img, stride, 2.0f, &r) == BN_OK &&
                    (r.class_id < 0 || r.class_id >= info->num_classes))
                    abort();
                free(img);
            }
            bn_session_free(s);
        }
        bn_model_close(m);
    } else if (strncmp(err, "fuzz.bnm: ", 10) != 0 && st != BN_ERR_NOMEM) {
        abort(); /* every refusal names the file */
    }
    free(buf);
    return 0;
}
