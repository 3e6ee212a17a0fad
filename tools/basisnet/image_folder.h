/* A labelled image folder, DIR/<label>/ holding .png, .jpg and .jpeg files (the layout
 * basisnet grab writes and tools/train reads), listed and matched to a model's labels for
 * basisnet eval --folder. */
#ifndef BN_TOOL_IMAGE_FOLDER_H
#define BN_TOOL_IMAGE_FOLDER_H

#include <stddef.h>
#include <stdint.h>

#include "basisnet.h"

typedef struct {
    uint32_t n;            /* images: class folders sorted by name, then files by name */
    char **path;           /* n paths DIR/FOLDER/FILE */
    int *label;            /* n model class ids */
    int nfolders;
    char **folder;         /* nfolders folder names, sorted */
    int *folder_label;     /* the model class id of each folder */
} image_folder;

/* Lists DIR and matches each class folder to a model label (image_folder_name). 0, or -1
 * after printing "PROG: ..." naming the folder at fault: DIR unreadable, no class folders, a
 * folder that is no label of the model (the message lists the labels), an empty folder. */
int image_folder_open(const char *prog, const char *dir, const bn_model_info *in, image_folder *out);
void image_folder_free(image_folder *f);

/* The folder name a label is looked for under: the label itself, each '/' (which a folder
 * name cannot hold) written as '_' ("T-shirt/top" -> "T-shirt_top"). A folder named exactly
 * like a label matches that label first. */
void image_folder_name(const char *label, char *buf, size_t len);

#endif
