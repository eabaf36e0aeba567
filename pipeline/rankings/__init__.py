"""The rankings stage: a question's candidate passages ordered three ways, packed into
contexts of the reader's token budget."""
