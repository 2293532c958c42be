"""Model pruning: structured (channel) pruning with real removal, and latency measurement."""
