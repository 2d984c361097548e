"""The kind/bug classifier: text cleaning, training, the saved bundle and TensorFlow-free prediction."""
