"""Files: IDX data (idx), where datasets are found and how they are fetched and checked
(datasets), checkpoints and resumable runs (checkpoint, resume), pictures (plots); everything
written through one atomic write (atomic), and every file read opened through one check that
it is a regular file (reading)."""
