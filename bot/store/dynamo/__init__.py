"""The DynamoDB store's parts; :mod:`bot.store.dynamodb` is its public face and its doc."""
