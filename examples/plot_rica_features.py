"""
==============================================
RICA features of natural images, predicted
==============================================

Learns 64 RICA features from whitened 8x8 patches of scikit-learn's sample
photos, ordinary and with each feature predicted from half of its pixels
(``se`` dictionary), and shows them as the paper's Figure 2 does: both are
localised, oriented edge detectors; the predicted ones are smoother.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_sample_images

from skpred import PredictedRICA, ZCAWhitening
from skpred.patches import normalize_patches, sample_patches
from skpred.plotting import plot_features

images = np.stack([im.mean(-1) for im in load_sample_images().images]).reshape(2, -1) / 255
patches = normalize_patches(sample_patches(images, (427, 640, 1), 8, 10000, random_state=0), 1e-4)
X = ZCAWhitening(epsilon=0.1).fit_transform(patches)

# %%
for dictionary, alpha in ((None, 1.0), ("se", 0.5)):
    rica = PredictedRICA(64, dictionary=dictionary, alpha_fraction=alpha, max_iter=150,
                         device="cpu", random_state=0).fit(X)
    plot_features(rica.components_, (8, 8),
                  title=f"{dictionary or 'ordinary'} RICA, {rica.fraction_learned_:.0%} learned")
plt.show()
