"""cloudbalance provider plugin for azure (implemented by the providers issue)."""
