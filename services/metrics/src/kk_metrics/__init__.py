"""The KillKrill agent's metrics container: scrape, turn into samples, hand to the shipper."""
