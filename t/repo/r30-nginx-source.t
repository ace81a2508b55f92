# make module builds against the source of the nginx that will load it: a
# source tree and a binary of two versions are refused before anything is
# built, with a message naming both; NGINX_BIN= takes no binary's flags.
# tools/nginx-version tells nginx, freenginx and Angie trees apart.
use strict;
use warnings;
use File::Path qw(make_path);
use File::Temp qw(tempdir);
use Test::More;

my $nginx = $ENV{WA_NGINX} || '/usr/sbin/nginx';
plan skip_all => "no $nginx" unless -x $nginx;

my $dir = tempdir(CLEANUP => 1);

# a source tree of the given headers only: the check comes before configure
sub tree {
    my ($name, %h) = @_;
    make_path("$dir/$name/src/core", "$dir/$name/auto");
    for my $file (keys %h) {
        open my $fh, '>', "$dir/$name/src/core/$file" or die "$file: $!";
        print $fh $h{$file};
        close $fh;
    }
    # a release tree of a git repository: configure in auto/, failing
    open my $fh, '>', "$dir/$name/auto/configure" or die "configure: $!";
    print $fh "#!/bin/sh\necho configure ran; exit 1\n";
    close $fh;
    chmod 0755, "$dir/$name/auto/configure";
    return "$dir/$name";
}

sub version { my $v = `sh tools/nginx-version @_`; chomp $v; $v }

my $plain = tree('plain', 'nginx.h' => qq(#define NGINX_VERSION      "1.99.0"\n)
                 . qq(#define NGINX_VER          "nginx/" NGINX_VERSION\n));
my $free = tree('free', 'nginx.h' => qq(#define NGINX_VERSION      "1.27.1"\n)
                . qq(#define NGINX_NAME         "freenginx"\n));
my $angie = tree('angie',
                 'nginx.h' => qq(#define NGINX_VERSION      "1.31.2"\n),
                 'angie.h' => qq(#define ANGIE_VERSION      "1.12.1"\n));
is version('--source', $plain), 'nginx/1.99.0', 'an nginx tree';
is version('--source', $free), 'freenginx/1.27.1', 'a freenginx tree';
is version('--source', $angie), 'Angie/1.12.1', 'an Angie tree';
my $bin = version('--binary', $nginx);
like $bin, qr{^nginx/\d+\.\d+\.\d+$}, "the binary: $bin";
is version('--binary', "$dir/none"), '', 'not a binary: nothing';

sub make_module {
    my $cmd = "make --no-print-directory module NGINX_SRC=$plain @_ "
        . "BUILD=$dir/b";
    return scalar `$cmd 2>&1`;
}

my $out = make_module("NGINX_BIN=$nginx");
isnt $? >> 8, 0, 'a source of another version than the binary: refused';
my $want = quotemeta "$plain is nginx/1.99.0, $nginx is $bin: a module "
    . 'loads only into the nginx it is built for';
like $out, qr/$want/, 'naming both';
unlike $out, qr/configure ran/, 'before configure';

$out = make_module('NGINX_BIN=');
like $out, qr/configure ran/,
    'NGINX_BIN= : no binary to match, configure (from auto/) runs';
unlike $out, qr/loads only into/, '... without the version check';

done_testing;
