"""`curate report RUN_DIR`: one self-contained HTML page (images and plots inlined as data
URIs, no network) that shows what a prune run kept and removed, and what it cost."""
