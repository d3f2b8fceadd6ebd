"""The raw files of the built-in datasets: official URLs, published checksums, mirror layouts."""

from __future__ import annotations

from .sources import DatasetSources, FileSpec, TreeSpec

NG20 = DatasetSources(
    name="ng20",
    files=(
        FileSpec(
            name="20news-bydate.tar.gz",
            sha256="8f1b2514ca22a5ade8fbb9cfa5727df95fa587f4c87b786e15c759fa66d95610",
            urls=(
                "https://ndownloader.figshare.com/files/5975967",  # the copy scikit-learn uses
                "http://qwone.com/~jason/20Newsgroups/20news-bydate.tar.gz",
            ),
            mirror_names=("20news-bydate.tar.gz", "20news-bydate/20news-bydate.tar.gz", "ng20/20news-bydate.tar.gz"),
            size=14464277,
        ),
    ),
    trees=(
        TreeSpec(
            name="20news-bydate-train",
            prefix="20news-bydate/20news-bydate-train",
            digest="dbb8a8d36d982652b8511221285e07a38bee0c2096a9bec8261d42f35163f404",
            n_files=11314,
            archive="20news-bydate.tar.gz",
            mirror_names=("20news-bydate/20news-bydate-train", "ng20/20news-bydate-train"),
        ),
        TreeSpec(
            name="20news-bydate-test",
            prefix="20news-bydate/20news-bydate-test",
            digest="9519a2a462329d61a75d09b0d7e33c6c9916ca1e8c2cb5dcb5d0b7dfdf29ec11",
            n_files=7532,
            archive="20news-bydate.tar.gz",
            mirror_names=("20news-bydate/20news-bydate-test", "ng20/20news-bydate-test"),
        ),
    ),
)

_AG_BASE = "https://raw.githubusercontent.com/mhjabreel/CharCnn_Keras/master/data/ag_news_csv/"


def _ag_mirror(name: str) -> tuple[str, ...]:
    return (f"ag_news/{name}", f"ag_news_csv/{name}", f"agnews/{name}")


AGNEWS = DatasetSources(
    name="agnews",
    files=(
        FileSpec(
            name="train.csv",
            md5="b1a00f826fdfbd249f79597b59e1dc12",  # the value torchtext checks
            urls=(_AG_BASE + "train.csv",),
            mirror_names=_ag_mirror("train.csv"),
            size=29470338,
        ),
        FileSpec(
            name="test.csv",
            sha256="521465c2428ed7f02f8d6db6ffdd4b5447c1c701962353eb2c40d548c3c85699",
            md5="d52ea96a97a2d943681189a97654912d",
            urls=(_AG_BASE + "test.csv",),
            mirror_names=_ag_mirror("test.csv"),
            size=1857427,
        ),
    ),
    notes=("AG News: only test.csv is strictly needed when the config sets "
           "agnews.data.resplit_from_test to true or auto (the results are then not comparable with the "
           "published figures)."),
)

_MNIST_URLS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")


def _mnist(name: str, sha256: str, md5: str, size: int) -> FileSpec:
    return FileSpec(
        name=name, sha256=sha256, md5=md5, size=size,
        urls=tuple(base + name for base in _MNIST_URLS),
        mirror_names=(f"mnist/{name}", f"MNIST/raw/{name}", f"mnist/raw/{name}"),
    )


MNIST = DatasetSources(
    name="mnist",
    files=(
        _mnist("train-images-idx3-ubyte.gz",
               "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
               "f68b3c2dcbeaaa9fbdd348bbdeb94873", 9912422),
        _mnist("train-labels-idx1-ubyte.gz",
               "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
               "d53e105ee54ea40749a09fcbcd1e9432", 28881),
        _mnist("t10k-images-idx3-ubyte.gz",
               "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
               "9fb629c4189551a2d022fa330f9573f3", 1648877),
        _mnist("t10k-labels-idx1-ubyte.gz",
               "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
               "ec29112dd5afa0611ce80d1b7f02629c", 4542),
    ),
)

# Fashion-MNIST (Xiao et al. 2017): the four official IDX files of the zalandoresearch/fashion-mnist
# release (GitHub repository, data/fashion/) and its S3 copy. md5: the values published with the release
# (and checked by torchvision); sha256: not published by Zalando, taken from torchvision's prototype
# dataset table and several independent listings that pair them with the official md5 values (not
# verified against the files here: no copy was available offline). Used by the RNN stage (xaipipe.rnn);
# not registered in CATALOG (the text/image stages of the main pipeline do not use this dataset).
_FASHION_URLS = ("https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
                 "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/")


def _fashion(name: str, sha256: str, md5: str, size: int) -> FileSpec:
    # the file names equal MNIST's, so the mirror layouts are sub-folders only
    return FileSpec(
        name=name, sha256=sha256, md5=md5, size=size,
        urls=tuple(base + name for base in _FASHION_URLS),
        mirror_names=(f"fashion_mnist/{name}", f"fashion-mnist/{name}", f"FashionMNIST/raw/{name}",
                      f"fashion/{name}"),
    )


FASHION_MNIST = DatasetSources(
    name="fashion_mnist",
    files=(
        _fashion("train-images-idx3-ubyte.gz",
                 "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
                 "8d4fb7e6c68d591d4c3dfef9ec88bf0d", 26421880),
        _fashion("train-labels-idx1-ubyte.gz",
                 "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
                 "25c81989df183df01b3e8a0aad5dffbe", 29515),
        _fashion("t10k-images-idx3-ubyte.gz",
                 "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
                 "bef4ecab320f06d8554ea6380940ec79", 4422102),
        _fashion("t10k-labels-idx1-ubyte.gz",
                 "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
                 "bb300cfdad3c16e7a12a480ee83cd310", 5148),
    ),
    notes=("Fashion-MNIST is used by the RNN stage only; offline, put the four official files into "
           "<raw_dir>/fashion_mnist/ or a mirror sub-folder fashion_mnist/ (or skip the dataset)."),
)

CATALOG = {s.name: s for s in (NG20, AGNEWS, MNIST)}
