"""Demo workflows and seed data for trying Stepwise: expense approval and content publishing."""
