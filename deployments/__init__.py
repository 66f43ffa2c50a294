"""Work pool, blocks and deployments set-up."""
