"""Director tenant web pages: the tenant admin's onboarding queue, fleet list, tags and EC details."""
