"""cloudbalance provider plugin for gcp (implemented by the providers issue)."""
