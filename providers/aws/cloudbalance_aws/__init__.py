"""cloudbalance provider plugin for aws (implemented by the providers issue)."""
