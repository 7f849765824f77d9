"""seqjax experiments: absl-flag entry points that reproduce the lecture's claims."""
