/* dirsave.h — multi-file saves atomic as a set: a save writes every file into a staging
 * directory beside the target ("<dir>.tmp.<pid>"), then swaps it for the target in one
 * renameat2(RENAME_EXCHANGE) and removes the old one. A reader (or a process killed at any
 * moment) sees the old set or the new set, never a mix. Entries of the old directory that the
 * new save does not write (other adapters' folders, files of the user's) are carried over by
 * hard links. Leftovers of killed saves (staging dirs, "*.tmp.<pid>" files of processes that
 * no longer run) are removed by the next save of that directory. */
#ifndef PEFT_CORE_DIRSAVE_H
#define PEFT_CORE_DIRSAVE_H

#include <stddef.h>

typedef struct peft_dirsave {
    char dir[4096];   /* the target, without trailing slashes */
    char stage[4160]; /* where to write: "<dir>.tmp.<pid>", created empty */
} peft_dirsave;

/* Cleans the leftovers of dead saves of dir, creates dir's parent (mkdir -p) and an empty
 * staging dir. 0, or -1 with err naming the path. */
int peft_dirsave_begin(peft_dirsave *s, const char *dir, char *err, size_t errlen);
/* Carries over what the stage lacks, fsyncs, swaps the stage in as dir and removes the old
 * set. 0, or -1 with err (the stage is removed; dir keeps its old contents). */
int peft_dirsave_commit(peft_dirsave *s, char *err, size_t errlen);
/* Gives up: removes the stage (dir untouched). */
void peft_dirsave_abort(peft_dirsave *s);

/* rm -rf path (files, folders, links; never follows a link); 0 or -1 */
int peft_rmtree(const char *path);

#endif
