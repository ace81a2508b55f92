# The repository stands on its own: no file of it reads, names or points at
# anything beside the clone (reference notes, payload collections).  .ci/run
# proves it by running everything in a clone made in an empty directory;
# this catches a new reference before it gets that far.  One exception:
# one line of .ci/run names the nginx release sources that make
# test-matrix builds against, where they lie beside the checkout.
use strict;
use warnings;
use File::Find;
use Test::More;

my @outside = (qr{\.\./shared\b}, qr{shared/fixtures}, qr{meta-payloads},
               qr{whatsapp-facts}, qr{nginx-redis-notes});
my ($files, $ci, @hits) = (0, 0);

find({ no_chdir => 1, wanted => sub {
    if (-d && m{^\./(?:\.git|build)$}) {
        $File::Find::prune = 1;
        return;
    }
    return unless -f && $_ ne "./$0" && $_ ne './' . ($0 =~ s{^\./}{}r);
    open my $fh, '<', $_ or return;
    local $/;
    my $text = <$fh> // '';
    $files++;
    if ($_ eq './.ci/run') {
        my @lines = grep { m{\.\./shared/nginx-src\b} } split /\n/, $text;
        is scalar @lines, 1, '.ci/run names the nginx sources on one line';
        like $lines[0], qr/^\s*nginx_src=/, '... and only to set nginx_src';
        $text =~ s{\.\./shared/nginx-src\b}{}g;
        $ci = 1;
    }
    for my $re (@outside) {
        push @hits, "$_: $1" if $text =~ /(.{0,30}$re.{0,30})/;
    }
} }, '.');

cmp_ok $files, '>', 100, "$files files read";
ok $ci, '.ci/run among them';
is scalar @hits, 0, 'none points outside the repository'
    or diag join "\n", @hits;

done_testing;
