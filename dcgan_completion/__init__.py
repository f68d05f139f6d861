"""Semantic image completion with a DCGAN: a TensorFlow 2 / Keras port.

    from dcgan_completion import build_generator, build_discriminator

Names are imported lazily, so that tools which do not need TensorFlow (face
alignment, GIFs) start without loading it.
"""
import importlib

__version__ = "0.1.0"

# public name -> module that defines it; each issue's module adds its names here.
_EXPORTS = {
    "InputError": "errors",
    "build_generator": "networks",
    "build_discriminator": "networks",
    "load_image": "images",
    "save_image": "images",
    "save_grid": "images",
    "image_grid": "images",
    "list_images": "images",
    # face alignment (issue 4)
    "align_face": "alignment",
    "align_face_with_matrix": "alignment",
    "align_all_faces": "alignment",
    "align_folder": "alignment",
    "poisson_blend": "blending",
    # issue 2: training (checkpoints, data, training)
    "load_models": "checkpoints",
    "train": "training",
    "build_dcgan": "training",
    "DCGAN": "training",
    "dataset_files": "data",
    "image_batches": "data",
    # issue 5: the original's TF1 checkpoints
    "find_tf1_checkpoint": "tf1_checkpoint",
    "load_tf1_models": "tf1_checkpoint",
    "convert_tf1_checkpoint": "tf1_checkpoint",
    # issue 3: completion (and issue 7's weighted context)
    "complete": "completion",
    "complete_files": "completion_files",
    "make_mask": "masks",
    "make_masks": "masks",
    "load_masks": "masks",
    "weighted_context": "masks",
    "save_gif": "images",
    # issue 7: completing real photos
    "complete_photo": "photos",
    "complete_photo_files": "photos",
    "load_photo_mask": "photos",
    # issue 10: quality measures
    "psnr": "metrics",
    "ssim": "metrics",
    "face_descriptors": "metrics",
    "face_realism": "metrics",
    "frechet_distance": "metrics",
    "identity_distance": "metrics",
    "same_person_fraction": "metrics",
    "SAME_PERSON_THRESHOLD": "metrics",
}


def __getattr__(name):
    if name in _EXPORTS:
        module = importlib.import_module(f".{_EXPORTS[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_EXPORTS))


__all__ = sorted(_EXPORTS)
