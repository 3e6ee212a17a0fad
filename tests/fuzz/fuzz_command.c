/* libFuzzer target for the socket command parser (protocol.c): any byte string must be
 * either a valid command or an error with a message, never a crash, leak or overread; a
 * parsed command's error/reply messages must serialize. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    proto_command cmd;
    char err[256];
    bn_status st = proto_parse_command((const char *)data, size, &cmd, err, sizeof err);
    if (st != BN_OK && err[0] == '\0')
        abort();    /* every rejection must say why */
    if (strnlen(err, sizeof err) >= sizeof err)
        abort();
    json_t *m = st == BN_OK ? proto_reply_json(proto_cmd_name(cmd.kind), cmd.id)
                            : proto_error_json(cmd.kind < PROTO_CMD_COUNT ? proto_cmd_name(cmd.kind)
                                                                          : NULL,
                                               cmd.id, err);
    if (!m)
        abort();
    size_t len;
    char *line = proto_dump_line(m, &len);
    if (!line || len < 3 || line[len - 1] != '\n' || memchr(line, '\n', len - 1))
        abort();    /* replies are exactly one line */
    free(line);
    json_decref(m);
    if (st == BN_OK && cmd.kind == PROTO_CMD_SUBSCRIBE) {
        if (cmd.filter.n_labels < 0 || cmd.filter.n_labels > PROTO_MAX_FILTER_LABELS)
            abort();
        (void)proto_filter_pass_label(&cmd.filter, "Bag", 0.5);
    }
    return 0;
}
