"""Detection: Sigma rules compiled to SQL over the case store, and behavioural analytics."""
