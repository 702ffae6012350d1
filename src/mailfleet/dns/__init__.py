"""Every domain's DNS: the records to publish (each with its reason), renderings for people and
for DNS tools, and a check of what is really published."""
