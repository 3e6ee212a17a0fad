/* Lists a labelled image folder the way tools/train's read_image_folder does (class folders
 * and files sorted by name, extensions case-insensitive) and maps folder names to a model's
 * labels (image_folder.h). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "image_folder.h"

#define IMAGE_EXTS ".png/.jpg/.jpeg"

void image_folder_name(const char *label, char *buf, size_t len)
{
    snprintf(buf, len, "%s", label);
    for (char *p = buf; *p; p++)
        if (*p == '/')
            *p = '_';
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int is_image_name(const char *name)
{
    static const char *const ext[] = {".png", ".jpg", ".jpeg"};
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++) {
        size_t e = strlen(ext[i]);
        if (n >= e && !strcasecmp(name + n - e, ext[i]))
            return 1;
    }
    return 0;
}

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + 1 + strlen(name) + 1;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* Names in dir (sorted) that are directories (want_dirs) or image files; NULL on error
 * after printing why. */
static char **list_dir(const char *prog, const char *dir, int want_dirs, int *count)
{
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "%s: %s: %s\n", prog, dir, strerror(errno));
        return NULL;
    }
    char **names = NULL;
    int n = 0, cap = 0, ok = 1;
    struct dirent *e;
    while (ok && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (!want_dirs && !is_image_name(e->d_name))
            continue;
        char *p = join(dir, e->d_name);
        struct stat st;
        int isdir = p && stat(p, &st) == 0 && S_ISDIR(st.st_mode);
        free(p);
        if (isdir != want_dirs)
            continue;
        if (n == cap) {
            char **nn = realloc(names, sizeof *names * (size_t)(cap = cap ? 2 * cap : 64));
            if (!nn) {
                ok = 0;
                break;
            }
            names = nn;
        }
        if (!(names[n] = strdup(e->d_name)))
            ok = 0;
        else
            n++;
    }
    closedir(d);
    if (!ok) {
        fprintf(stderr, "%s: %s: out of memory\n", prog, dir);
        for (int i = 0; i < n; i++)
            free(names[i]);
        free(names);
        return NULL;
    }
    if (n)
        qsort(names, (size_t)n, sizeof *names, cmp_str);
    *count = n;
    return names ? names : calloc(1, sizeof *names);
}

static int match_label(const char *folder, const bn_model_info *in)
{
    for (int c = 0; c < in->num_classes; c++)
        if (!strcmp(folder, in->labels[c]))
            return c;
    for (int c = 0; c < in->num_classes; c++) {
        char name[256];
        image_folder_name(in->labels[c], name, sizeof name);
        if (!strcmp(folder, name))
            return c;
    }
    return -1;
}

static void print_labels(const bn_model_info *in)
{
    for (int c = 0; c < in->num_classes; c++) {
        char name[256];
        image_folder_name(in->labels[c], name, sizeof name);
        if (strcmp(name, in->labels[c]))
            fprintf(stderr, "%s%s (label %s)", c ? ", " : "", name, in->labels[c]);
        else
            fprintf(stderr, "%s%s", c ? ", " : "", name);
    }
}

void image_folder_free(image_folder *f)
{
    for (uint32_t k = 0; f->path && k < f->n; k++)
        free(f->path[k]);
    for (int i = 0; f->folder && i < f->nfolders; i++)
        free(f->folder[i]);
    free(f->path);
    free(f->label);
    free(f->folder);
    free(f->folder_label);
    memset(f, 0, sizeof *f);
}

int image_folder_open(const char *prog, const char *dir_arg, const bn_model_info *in, image_folder *out)
{
    memset(out, 0, sizeof *out);
    char *dir = strdup(dir_arg);
    char ***files = NULL;
    int *nfiles = NULL, rc = -1;
    if (!dir)
        goto oom;
    for (size_t l = strlen(dir); l > 1 && dir[l - 1] == '/'; l--) /* "DIR/" -> "DIR" */
        dir[l - 1] = '\0';
    if (!(out->folder = list_dir(prog, dir, 1, &out->nfolders)))
        goto done;
    if (out->nfolders == 0) {
        fprintf(stderr, "%s: %s: no class folders (expected %s/LABEL/*.png|*.jpg|*.jpeg, one folder per label)\n",
                prog, dir, dir);
        goto done;
    }
    /* Check every folder name before reading any listing, like tools/train. */
    if (!(out->folder_label = calloc((size_t)out->nfolders, sizeof *out->folder_label)))
        goto oom;
    for (int i = 0; i < out->nfolders; i++)
        if ((out->folder_label[i] = match_label(out->folder[i], in)) < 0) {
            fprintf(stderr, "%s: %s/%s: folder '%s' is not a label of the model %s; its %d labels, as folder names: ",
                    prog, dir, out->folder[i], out->folder[i], in->name, in->num_classes);
            print_labels(in);
            fprintf(stderr, "%s\n", !strcmp(out->folder[i], "unlabelled")
                                        ? " (basisnet grab saves to DIR/unlabelled without --label: move the "
                                          "frames into label folders)"
                                        : "");
            goto done;
        }
    files = calloc((size_t)out->nfolders, sizeof *files);
    nfiles = calloc((size_t)out->nfolders, sizeof *nfiles);
    if (!files || !nfiles)
        goto oom;
    size_t total = 0;
    for (int i = 0; i < out->nfolders; i++) {
        char *sub = join(dir, out->folder[i]);
        if (!sub)
            goto oom;
        files[i] = list_dir(prog, sub, 0, &nfiles[i]);
        if (files[i] && nfiles[i] == 0)
            fprintf(stderr, "%s: %s: empty class folder (no " IMAGE_EXTS " images)\n", prog, sub);
        free(sub);
        if (!files[i] || nfiles[i] == 0)
            goto done;
        total += (size_t)nfiles[i];
    }
    if (total > 100000000) {
        fprintf(stderr, "%s: %s: %zu images, more than eval takes (100000000)\n", prog, dir, total);
        goto done;
    }
    out->path = calloc(total, sizeof *out->path);
    out->label = calloc(total, sizeof *out->label);
    if (!out->path || !out->label)
        goto oom;
    for (int i = 0; i < out->nfolders; i++)
        for (int j = 0; j < nfiles[i]; j++) {
            size_t n = strlen(dir) + strlen(out->folder[i]) + strlen(files[i][j]) + 3;
            char *p = malloc(n);
            if (!p)
                goto oom;
            snprintf(p, n, "%s/%s/%s", dir, out->folder[i], files[i][j]);
            out->path[out->n] = p;
            out->label[out->n++] = out->folder_label[i];
        }
    rc = 0;
    goto done;
oom:
    fprintf(stderr, "%s: %s: out of memory\n", prog, dir_arg);
done:
    for (int i = 0; files && i < out->nfolders; i++) {
        for (int j = 0; files[i] && j < nfiles[i]; j++)
            free(files[i][j]);
        free(files[i]);
    }
    free(files);
    free(nfiles);
    free(dir);
    if (rc)
        image_folder_free(out);
    return rc;
}
