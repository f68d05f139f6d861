"""Semantic image completion with a DCGAN (Yeh, Chen et al., CVPR 2017): a TensorFlow 2 /
Keras port of the TF1 toolkit. Fill the masked part of a face by searching the generator's
latent space; train the DCGAN; align faces in photos as OpenFace does.

    from dcgan_completion import complete, load_encoder, load_models, make_masks
    generator, discriminator = load_models()          # the face model shipped with the package
    result = complete(images, make_masks("center", 64, seeds=range(len(images))),
                      generator, discriminator,        # images: [N, 64, 64, 3] in [-1, 1]
                      encoder=load_encoder())          # its encoder starts the search

The library, by concern (each name importable from here, from its module in brackets):

Training
    train(dataset, epochs=25, ...)       train-dcgan itself: resumable, samples, logs [training]
    build_dcgan, DCGAN                   the model whose train_step is one step [training]
    build_generator, build_discriminator the original's networks [networks]
    dataset_files, image_batches         the tf.data input of a folder of faces [data]
Completion
    complete(images, masks, G, D, ...)   search z, fill the hole: CompletionResult [completion]
    SearchOptions                        how it searches: approach (adam, momentum, hmc), n_iter, init, ... [search]
    load_encoder, train_encoder          the learned start of the search: E(masked face) -> z [encoder]
    build_encoder, save_encoder          the encoder network; kept with the model it belongs to [encoder]
    complete_files                       dcgan-complete itself: files in, files out [completion_files]
    complete_photo, complete_photo_files faces in ordinary photos, at full resolution [photos]
    photo_completions                    the same, photo by photo as each group is written [photos]
    poisson_blend                        blend a fill into the known pixels [blending]
Masks
    make_mask, make_masks                the mask types (center, left, random, ...) [masks]
    load_masks, load_photo_mask          mask images (white = keep) [masks]
    weighted_context                     the paper's weighted context loss weights [masks]
Alignment (no TensorFlow)
    align_face, align_face_with_matrix   the largest face of a photo, aligned [alignment]
    align_all_faces, align_folder        every face; align-faces itself [alignment]
Images
    load_image, save_image, list_images  read as float [-1, 1], write atomically [images]
    image_grid, save_grid, save_gif      grids and animations [images]
Checkpoints
    load_models(checkpoint=None)         (generator, discriminator): shipped, ours or TF1 [checkpoints]
    convert_tf1_checkpoint               the original's checkpoint in this project's format [checkpoints]
    find_tf1_checkpoint, load_tf1_models reading the original's TF1 checkpoints [tf1_checkpoint]
Quality measures (no TensorFlow but for SSIM)
    psnr, ssim                           against the truth, per image [metrics]
    face_descriptors                     dlib's 128-D descriptors of aligned faces [metrics]
    face_realism, frechet_distance       how alike two sets of faces are (FID-like) [metrics]
    identity_distance, same_person_fraction, SAME_PERSON_THRESHOLD   same person? [metrics]
Errors
    InputError                           bad input; its message says what to do [errors]

The tools (dcgan-complete, train-dcgan, align-faces, make-gif, dcgan-convert) are thin
layers over these, in dcgan_completion.cli. Names are imported lazily, so that tools
which do not need TensorFlow (face alignment, GIFs) start without loading it.
"""
import importlib

__version__ = "0.1.0"

# public name -> module that defines it, by concern (as listed above).
_EXPORTS = {
    # training
    "train": "training",
    "build_dcgan": "training",
    "DCGAN": "training",
    "build_generator": "networks",
    "build_discriminator": "networks",
    "dataset_files": "data",
    "image_batches": "data",
    # completion
    "complete": "completion",
    "SearchOptions": "search",
    "load_encoder": "encoder",
    "train_encoder": "encoder",
    "build_encoder": "encoder",
    "save_encoder": "encoder",
    "complete_files": "completion_files",
    "complete_photo": "photos",
    "complete_photo_files": "photos",
    "photo_completions": "photos",
    "poisson_blend": "blending",
    # masks
    "make_mask": "masks",
    "make_masks": "masks",
    "load_masks": "masks",
    "load_photo_mask": "masks",
    "weighted_context": "masks",
    # alignment
    "align_face": "alignment",
    "align_face_with_matrix": "alignment",
    "align_all_faces": "alignment",
    "align_folder": "alignment",
    # images
    "load_image": "images",
    "save_image": "images",
    "list_images": "images",
    "image_grid": "images",
    "save_grid": "images",
    "save_gif": "images",
    # checkpoints
    "load_models": "checkpoints",
    "find_tf1_checkpoint": "tf1_checkpoint",
    "load_tf1_models": "tf1_checkpoint",
    "convert_tf1_checkpoint": "checkpoints",
    # quality measures
    "psnr": "metrics",
    "ssim": "metrics",
    "face_descriptors": "metrics",
    "face_realism": "metrics",
    "frechet_distance": "metrics",
    "identity_distance": "metrics",
    "same_person_fraction": "metrics",
    "SAME_PERSON_THRESHOLD": "metrics",
    # errors
    "InputError": "errors",
}


def __getattr__(name):
    if name in _EXPORTS:
        module = importlib.import_module(f".{_EXPORTS[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_EXPORTS))


__all__ = sorted(_EXPORTS)
