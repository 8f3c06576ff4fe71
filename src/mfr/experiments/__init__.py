"""The paper's experiments (Tables 1-4) as resumable grids of train + evaluate cells."""
