"""Files: IDX data and its checksums and downloads, checkpoints and resumable runs, pictures;
everything written through one atomic write."""
